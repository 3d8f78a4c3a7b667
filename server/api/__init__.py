"""REST: login and admin CRUD, under `API_V1_STR`, with OpenAPI and documentation pages."""
