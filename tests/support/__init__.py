"""Test harness shared by the e2e tests: a real docker-registry (plain, TLS + Basic, token auth),
test images built from Debian's busybox-static with an independent pusher, and a real pinnaced
run in temporary directories. Nothing here imports pinnace's own registry or image code."""
