"""Relais policy rules (RGPD/CNIL, ANSSI, messaging) and the Pulumi CrossGuard pack."""
