// Technology cards of the demo menu (also used by tests): two dishes sharing an ingredient.
export function cardXml(o: {
  dishId: string;
  name: string;
  priceMinor: number;
  ingredients: [string, number][];
  version?: number;
}): string {
  const lines = o.ingredients
    .map(
      ([code, gross]) =>
        `    <ingredient code="${code}" unit="g" gross="${gross}" net="${Math.max(1, gross - 5)}"/>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<technologyCard xmlns="urn:integration-hub:kitchen:tech-card:1" dishId="${o.dishId}" version="${o.version ?? 1}">
  <name>${o.name}</name>
  <price currency="RUB">${o.priceMinor}</price>
  <ingredients>
${lines}
  </ingredients>
  <cooking program="${o.dishId}-std" temperatureC="90" durationSec="600"/>
</technologyCard>`;
}

export const BORSCHT = cardXml({
  dishId: 'borscht',
  name: 'Borscht',
  priceMinor: 45_000,
  ingredients: [
    ['beet', 120],
    ['beef', 80],
  ],
});
export const SALAD = cardXml({
  dishId: 'salad',
  name: 'Beet salad',
  priceMinor: 30_000,
  ingredients: [
    ['beet', 60.5],
    ['walnut', 15],
  ],
});
