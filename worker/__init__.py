"""The TWAP execution worker."""
