"""Certification: run a versioned profile's required tests for a partner's backup application and pack the
evidence into a bundle (``certify``) that anyone can check offline (``verify-bundle``).

Why a package of small modules: the profile (``profile``), the product description (``product``), the pytest
plugin that selects the profile's tests (``selection``), the secret scan (``scan``), the bundle (``bundle``) and
its verification (``verify``) change for different reasons and are tested one by one.
"""

from __future__ import annotations

from conformance.input_errors import InputError


class CertifyError(InputError):
    """Bad input to certify or verify-bundle (a file, a field, a profile): one line, exit code 2."""
