"""msdet's benchmark suite (``python bench/run.py``); see ``bench/run.py``."""
