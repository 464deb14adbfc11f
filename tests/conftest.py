pytest_plugins = ["tests.fake_api_fixture"]
