"""The lab: targets (the embedded simulator or a target file), their safety rail and VM locks, the resource
tracker every created object goes through, the preflight, the sweeper of leaks, secrets and TLS pinning.
"""
