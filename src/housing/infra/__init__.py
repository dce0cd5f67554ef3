"""Infrastructure as code: the CloudFormation stack in ``infra/`` and the GitHub settings it feeds."""
