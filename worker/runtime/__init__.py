"""The worker's moving parts: intake, scheduling, guarded execution, control, recovery."""
