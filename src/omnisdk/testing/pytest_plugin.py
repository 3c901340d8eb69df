"""pytest plugin (entry point `pytest11`): fixtures every omnisdk user and plugin vendor gets."""
