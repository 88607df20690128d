import t from 'tap'
import { cpuidleDriver, cpuidleHonoursQos } from '../../bench/cpuidle'

t.test('cpuidle driver: read from sysfs, trimmed; null without cpuidle', async (t) => {
  const paths: string[] = []
  t.equal(cpuidleDriver((p) => { paths.push(p); return 'haltpoll\n' }), 'haltpoll')
  t.same(paths, ['/sys/devices/system/cpu/cpuidle/current_driver'])
  t.equal(cpuidleDriver(() => 'none\n'), 'none')
  t.equal(cpuidleDriver(() => null), null)
})

t.test('only a real cpuidle driver honours a 0 us PM QoS request', async (t) => {
  t.ok(cpuidleHonoursQos('haltpoll'))
  t.ok(cpuidleHonoursQos('intel_idle'))
  t.notOk(cpuidleHonoursQos('none'), 'no driver: default_idle_call halts')
  t.notOk(cpuidleHonoursQos(''))
  t.notOk(cpuidleHonoursQos(null), 'no cpuidle at all')
})
