"""`relais audit`: live facts of each host against the hardening baseline, as findings."""
