"""The reviewer's library: stars, collections, zip downloads, and deleting jobs with every file
they stored (on request, or by the retention policy)."""
