"""What runs the core: the Flask service factory, the embedded runner and the command line."""
