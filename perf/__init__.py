"""Performance: speed and peak memory at named sizes (`python -m perf.run`, `make perf`), detector
quality on the simulator and Weibo-S (`python -m perf.quality`) and fault injection at size
(`python -m perf.faults`), `zombiescan coordination` against coordination-network-toolkit
(`python -m perf.coordination_compare`, the toolkit in its own venv from perf/requirements-toolkit.txt).
The real-data quality benchmark is another thing: pipeline/benchmark/."""
