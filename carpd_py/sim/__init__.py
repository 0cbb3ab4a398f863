"""The simulated OpenBSD host: a JSON world, ifconfig/sysctl executables, and their output."""
