"""ComponentResource classes with typed args; the entry program only wires them."""
