"""AWS-side helpers that are not adapters: the SSM document generator and readers of infra/template.yaml."""
