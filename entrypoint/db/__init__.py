"""The database edges: each takes the connection it is handed."""
