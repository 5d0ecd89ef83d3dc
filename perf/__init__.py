"""Performance: speed and peak memory at named sizes (`python -m perf.run`, `make perf`), detector
quality on the simulator and Weibo-S (`python -m perf.quality`) and fault injection at size
(`python -m perf.faults`). The real-data quality benchmark is another thing: pipeline/benchmark/."""
