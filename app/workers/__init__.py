"""Worker processes: ``pool`` is the generic process pool (spawn, time limits, crash
isolation, replacement); ``extraction`` is the service's pool that runs feature extraction."""
