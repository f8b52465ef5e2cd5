"""Tests of the ctypes VixDiskLib backend over a C test double of our own."""
