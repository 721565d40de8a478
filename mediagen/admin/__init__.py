"""What admins read: the daily roll-up (``rollup``), metrics from it (``reports``), the task history
(``history``) and the system report (``system``)."""
