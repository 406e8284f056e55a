"""What every layer and ``celeryconfig.py`` share: names and the environment reader.

Imports nothing of the project (and celery only lazily, for a crontab), so ``celeryconfig.py`` (which
must not import the project) and ``engines`` (which import nothing of ``app``) can use it.
"""
