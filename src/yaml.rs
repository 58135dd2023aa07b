//! The one place YAML is parsed and written, so that replacing the YAML library touches one module.
