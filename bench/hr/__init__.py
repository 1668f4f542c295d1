"""1,000 HR joiners through the local host on the sandbox: time to Active and Graph economy."""
