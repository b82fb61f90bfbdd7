"""Pages. Thin doors: check the role, call a selector or service, render. One module per page:
`overview` (/), `runs_list` (/runs/), `run_page` (/runs/<id>/ with its fragments and actions),
`agents` (/agents/), `replay` (re-execute, playback, compare), `caps` (/caps/), `prices`
(/prices/)."""
