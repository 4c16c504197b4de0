"""Machinery shared by the local backends (threads and processes): queueing, deadlines."""
