"""What the operator configures: settings, logging, and what specs and webhooks may reach."""
