// Starts Swagger UI on /docs (the page runs no inline script under its CSP).
const root = document.getElementById("swagger-ui");
window.ui = window.SwaggerUIBundle({
  url: root.dataset.document,
  domNode: root,
  // no badge fetched from validator.swagger.io: the page reaches nothing but this server
  validatorUrl: null,
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  presets: [window.SwaggerUIBundle.presets.apis],
});
