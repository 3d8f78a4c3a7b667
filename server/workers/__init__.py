"""Background loops every instance runs: deadlines, the payment gateway, POS delivery, housekeeping."""
