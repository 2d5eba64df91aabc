"""Backups that restore: borg repositories per tenant on another site, restore and drills.

- `jobs`: which backup jobs the Plan asks for (pure);
- `render`: the files deploys/backup writes (pure);
- `agent`: the host-side agent (stdlib only, installed as /usr/local/sbin/relais-backup);
- `remote`: the controller's side: run the agent over SSH, read its JSON answers;
- `report`: status records, recovery point, policy findings on live state.
"""

from relais.backup.jobs import BackupError, BackupJob, backup_jobs, find_job, jobs_on, jobs_to

__all__ = ["BackupError", "BackupJob", "backup_jobs", "find_job", "jobs_on", "jobs_to"]
