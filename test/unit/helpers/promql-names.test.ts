import assert from 'node:assert/strict';
import { metricNamesOf, seriesName } from '../../helpers/promql-names.ts';

const names = (expr: string) => [...metricNamesOf(expr)].sort();

describe('metric names in PromQL (test/helpers/promql-names.ts)', () => {
  it('finds a bare name, a name with matchers and a name with a range', () => {
    assert.deepEqual(names('up'), ['up']);
    assert.deepEqual(names('up{job="sakshya-collector"} == 0'), ['up']);
    assert.deepEqual(names('rate(sakshya_collector_batches_total[5m])'), ['sakshya_collector_batches_total']);
    assert.deepEqual(names('sakshya_agent_circuit_open==1'), ['sakshya_agent_circuit_open']);
  });

  it('leaves out functions, aggregations, operators, keywords and label lists', () => {
    assert.deepEqual(
      names('sum by (outcome) (rate(a_total{outcome!~"accepted|duplicate"}[15m])) / ignoring (outcome) group_left sum(rate(a_total[15m])) > 0.25'),
      ['a_total'],
    );
    assert.deepEqual(names('max by (agent, instance) (x) == bool 1 and on () y unless z or w offset 1h'), ['w', 'x', 'y', 'z']);
    assert.deepEqual(names('histogram_quantile(0.99, sum by (le) (rate(h_bucket{route="/api/v1/batches"}[$__rate_interval])))'), ['h_bucket']);
    assert.deepEqual(names('time() - max(ts_seconds) > 6 * 3600'), ['ts_seconds']);
    assert.deepEqual(names('count(x > 1) or vector(0)'), ['x']);
    assert.deepEqual(names('topk(10, max without (instance) (deriv(b[1h:5m])))'), ['b']);
  });

  it('does not take label values, regexes, durations or Grafana variables for names', () => {
    assert.deepEqual(names('a{file=~"(.*/)?sakshya\\\\.prom", instance=~"$instance"}[5m]'), ['a']);
    assert.deepEqual(names("b{route='/api/v1/records/:id'} offset 5m"), ['b']);
    assert.deepEqual(names('c[$__rate_interval]'), ['c']);
  });

  it('reads the name of a promtool input series', () => {
    assert.equal(seriesName('sakshya_agent_witness_alarm{agent="AS-KMR-001"}'), 'sakshya_agent_witness_alarm');
    assert.equal(seriesName('up'), 'up');
    assert.equal(seriesName('{__name__="x_total", job="j"}'), 'x_total');
  });
});
