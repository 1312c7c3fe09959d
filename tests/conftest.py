pytest_plugins = [
    "fixtures_data",
    "fixtures_deploy",
    "fixtures_explorer",
    "fixtures_servers",
    "fixtures_service",
    "fixtures_stack",
]
