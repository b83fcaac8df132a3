// The API documentation page (/docs): Swagger UI from this origin. "Try it out" runs as the signed-in
// user: the session cookie goes along, and writes carry the CSRF token the API asks for.

function csrfToken() {
  const found = document.cookie.split(';').map((c) => c.trim()).find((c) => c.startsWith('pumpwatch_csrf='));
  return found ? decodeURIComponent(found.slice('pumpwatch_csrf='.length)) : '';
}

window.SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
  requestInterceptor: (request) => {
    if (request.method && request.method.toUpperCase() !== 'GET') request.headers['X-CSRF-Token'] = csrfToken();
    return request;
  },
});
