"""The plain-Python core: the cap table and the budget, the context an agent gets, the runner,
the recorder protocol, tools, threads, ids, masking, backtest and run comparison. Nothing here
touches the database, so all of it is tested without one."""
