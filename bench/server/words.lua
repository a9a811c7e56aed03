-- The words of appended events and of search queries, shared so that searches match.
return {"invoice", "refund", "login", "password", "shipping", "delay", "upgrade",
  "billing", "account", "export", "latency", "timeout", "schema", "backup", "restore"}
