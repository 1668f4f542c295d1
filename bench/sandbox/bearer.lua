-- Adds the sandbox access token (from the environment, never from the command line) to every request.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SANDBOX_TOKEN")
