"""Relais: sovereign messaging for French communes, from declarations to running tenants."""

__version__ = "0.1.0"
