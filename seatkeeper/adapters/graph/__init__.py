"""Microsoft Graph over httpx with tokens from MSAL: retries, paging, batches, bulk member adds, counters."""
