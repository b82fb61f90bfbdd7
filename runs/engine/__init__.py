"""The plain-Python core: the cap table and the budget, the context an agent gets, the runner,
the recorder protocol, tools, threads, ids, masking, backtest, run comparison, spend-window
periods and webhook signing. Nothing here touches the database, so all of it is tested without
one."""
