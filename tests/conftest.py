pytest_plugins = ["fixtures_data", "fixtures_servers", "fixtures_service", "fixtures_stack"]
