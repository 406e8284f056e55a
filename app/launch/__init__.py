"""Process launchers: `openwa run` (:mod:`.platform`), the single roles (:mod:`.roles`) and
what keeps their processes honest (:mod:`.guard`). Above ``tasks`` in the import graph;
this package imports nothing by itself, so ``app.launch.guard`` stays light."""
