"""What the demo, the tests and the benchmark share to run the entrypoint on real PostgreSQL; never shipped.

The wheel holds `entrypoint` only (pyproject.toml); this package needs a checkout.
`harness.postgres` starts and removes throwaway servers, `harness.production`
builds the runbook's drifted production database on one, and `harness.demo`
(`scripts/demo`) replays the runbook's deploy on it.
"""
