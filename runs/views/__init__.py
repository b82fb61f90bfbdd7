"""Pages. Thin doors: check the role, call a selector or service, render. One module per page:
`overview` (/), `runs_list` (/runs/), `run_page` (/runs/<id>/ with its fragments and actions),
`agents` (/agents/), `replay` (re-execute, playback, compare), `caps` (/caps/), `windows`
(spend windows on /caps/), `prices` (/prices/), `keys` (/keys/), `webhooks` (/webhooks/).
Beside them, what pages share: `forms`, `charts` (SVG geometry), `timeline` (the waterfall's
rows) and `formatting` (durations and dollars as text)."""
