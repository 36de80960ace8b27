"""Formal proofs (SymbiYosys, smtbmc z3) of the RTL against specifications written from docs/numerics.md §3:
see docs/verification.md and tb/test_formal.py."""
