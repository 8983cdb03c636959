"""Serving: `nmtpipe translate` and the SavedModel export."""
