"""Accounts, passwords, JWTs and personal API tokens."""
