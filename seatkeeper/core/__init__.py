"""The pure core: models, the policy decision, the error tree and the ports. No I/O lives here."""
