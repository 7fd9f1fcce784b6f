"""What only a run on this machine needs: the console, the run lock, the run summary read from MLMD, the report."""
