"""The chaos run (`python -m bench.chaos`): HR churn, direct group edits, Graph faults and kill -9, then a
person-by-person comparison of the tenant with what the policy implies."""
