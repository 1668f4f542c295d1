"""Small FunctionApps the e2e tests run in the local host as a real process."""
