"""HTTP routes, one module per area; ``main.create_app`` includes them."""
