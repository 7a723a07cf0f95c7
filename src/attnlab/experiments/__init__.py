"""The notes' claims as runnable studies, and the checks they rely on."""
